"""The MMT community's file formats (`community`: the cuboid library's scan text and
parameters)."""
