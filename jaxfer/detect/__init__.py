"""Face detectors for inference: MTCNN (boxes and five landmarks, in JAX,
from the `mtcnn` wheel's weights) and the alignment its landmarks allow."""
