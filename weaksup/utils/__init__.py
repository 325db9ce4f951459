"""Foundation helpers shared by every layer: safe checkpoint loading (``checkpoint``, torch),
atomic file writes and output checks (``file_io``), checked image reading (``image_io``) and RLE
validation (``rle``); the last three are plain numpy / OpenCV / Pillow, so light workers can use
them. Import the submodules directly."""
