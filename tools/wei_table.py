#!/usr/bin/env python
"""Print Wei et al.'s Tab. 1 (AN_A, SN_A, AN_B, SN_B) and Tab. 3 (with / without cross-image
refinement) from a pipeline's output folder (the ``wei_results.json`` of each scheme), with HCP's
AP, the training labels' mIoU and the background-only floor when ``wei_scores.json`` has them.

    python tools/wei_table.py output/wei_demo

Run the pipeline first (``train_net.py --config-file configs/Wei/...``), which prints
the same tables when it ends.
"""

import argparse
import sys

from weaksup.methods.wei.pipeline import (
    format_wei_tables,
    load_wei_results,
    load_wei_scores,
    result_classes,
)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("output_dir", help="OUTPUT_DIR of a Wei pipeline run")
    args = parser.parse_args(argv)
    results = load_wei_results(args.output_dir)
    if not results:
        print(f"{args.output_dir}: no scheme results (*/wei_results.json)", file=sys.stderr)
        return 1
    print(format_wei_tables(results, result_classes(results), load_wei_scores(args.output_dir)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
