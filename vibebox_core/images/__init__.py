"""Base images: the store sessions boot from, and how an image is planned and built."""
