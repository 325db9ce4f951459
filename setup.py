#!/usr/bin/env python
"""weaksup: weakly-supervised instance and semantic segmentation on Detectron2.

Detectron2 itself is not listed in ``install_requires``: it has no release on PyPI under its own
name. Install it first (``install.sh`` does, or see README), ``weaksup`` checks for it on import.
"""

from setuptools import find_packages, setup

setup(
    name="weaksup",
    version="0.1.0",
    description="Detectron2 extension: instance and semantic segmentation from boxes, "
    "a few masks, or image tags",
    long_description=open("README.md").read() if __import__("os").path.exists("README.md") else "",
    long_description_content_type="text/markdown",
    python_requires=">=3.10",
    packages=find_packages(include=["weaksup", "weaksup.*"]),
    # configs/ ships inside the package as weaksup/model_zoo/configs (a link to it in the clone,
    # so there is one tree), found by weaksup.model_zoo.get_config_file as in Detectron2
    package_data={"weaksup.model_zoo": ["configs/*.yaml", "configs/**/*.yaml"]},
    install_requires=[
        "torch>=2.0",
        "torchvision>=0.15",
        "numpy",
        "opencv-python-headless",
        "scikit-image",
        "scipy",
        "pycocotools>=2.0.2",
        "faster-coco-eval",
        "fvcore",
        "tqdm",
        "matplotlib",
        "setuptools<81",
    ],
    # the command-line jobs of tools/ (installed as weaksup.tools: weaksup/tools links there)
    entry_points={
        "console_scripts": [
            "weaksup-train=weaksup.tools.train_net:cli",
            "weaksup-predict=weaksup.tools.predict:cli",
            "weaksup-export=weaksup.tools.export_model:cli",
            "weaksup-pseudo-masks=weaksup.tools.make_pseudo_masks:cli",
            "weaksup-eval-pseudo-masks=weaksup.tools.eval_pseudo_masks:cli",
            "weaksup-proxy-masks=weaksup.tools.make_proxy_masks:cli",
        ]
    },
    extras_require={"test": ["pytest", "pytest-timeout"]},
)
