"""channels1_kit: what keeps a Django Channels 1 site alive on a supported runtime.

Importing the package does nothing else: channels1_kit.pth imports channels1_kit.loader at
every interpreter start, so this module must stay free of Django and channels imports.
"""

__version__ = "0.1.0"

# Django 2.2 does not find an app's AppConfig by itself (3.2+ does, and ignores this).
default_app_config = "channels1_kit.apps.Channels1KitConfig"
