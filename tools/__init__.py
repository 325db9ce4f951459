"""weaksup's command-line jobs. In the clone they run as scripts (``python tools/predict.py``);
installed, they are the package ``weaksup.tools`` (``weaksup/tools`` links here, so there is one
copy) and its console scripts: ``weaksup-train`` (:mod:`.train_net`, as the clone's
``train_net.py``), ``weaksup-predict``, ``weaksup-export``, ``weaksup-pseudo-masks``,
``weaksup-proxy-masks`` and ``weaksup-eval-pseudo-masks``; ``python -m weaksup.tools.<job>``
runs any of them."""
