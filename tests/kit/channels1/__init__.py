"""A Channels 1 site that uses every piece of channels 1.1.8 the kit's own site does not: routing
with route_class and include, the generic consumers and the demultiplexer, data binding, the
delay server (channels.delay, rundelay), runserver, runworker's --only-channels and
--exclude-channels. tests/kit/test_channels1.py runs it as real processes on each runtime.

Written as the Channels 1 documentation writes these pieces, with nothing of the kit named but
the layer: what it proves is that channels itself works there, not the kit's own additions.
"""
