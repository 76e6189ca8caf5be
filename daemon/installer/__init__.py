"""The installer: plans, links and removes distributions in a target environment.

``environment`` (scheme paths, discovery, locks), ``installed`` (what site-packages holds),
``plan`` (wanted vs installed), ``wheel`` (link one unpacked wheel in), ``uninstall``
(RECORD-driven removal), ``service`` (the ``sync``/``install``/``uninstall``/``list``/
``venv`` methods).
"""
