"""The ASGI 1 channel-layer base classes that asgi_redis and channels.test import from asgiref 1.

asgiref 3, which Django 3.0+ requires, no longer ships them. These are written here against
the ASGI 1 "Channel Layer" specification; the loader (channels1_kit.loader) serves them as
``asgiref.base_layer``, ``asgiref.inmemory`` and ``asgiref.conformance`` only where the
installed asgiref lacks those modules.
"""
