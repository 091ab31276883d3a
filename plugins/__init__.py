"""Detector families shipped with pyod-ae-ext, one module each.

Installed as ``pyod_ae_ext.plugins``; every module registers its detectors through the
``adscore`` entry-point group, exactly as a third-party plugin does.
"""
