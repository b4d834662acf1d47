"""Convert the public burned-in-text rule library (pydicom/deid `deid.dicom*` recipes, whose
pixel filters derive from RSNA CTP's DicomPixelAnonymizer scripts; MIT) into the rule files
of profiles/pixel/.

    python scripts/convert_region_rules.py ../shared/data/region-rules profiles/pixel

The conversion itself is anonymizer/importers/region_rules.py, shared with `amana profile
import --from deid`. What is converted, and how:
- graylist LABELs with coordinates -> `action: mask` rules (ctp-device-regions.yaml);
  `coordinates` are xmin,ymin,xmax,ymax and `ctpcoordinates` x,y,width,height in the
  source; both become [x, y, width, height].
- blacklist LABELs of deid.dicom -> `action: examine` rules (ctp-examine-signs.yaml):
  header signs of burned-in text, which make an image go through OCR.
- the ultrasound recipe's "blank all, keep the ultrasound regions" pair -> one optional
  rule in ultrasound-regions.yaml (not in the default policy: it blanks everything around
  the ultrasound regions, including text-free parts of the image).
- whitelist LABELs ("marked as clean") and graylist LABELs without coordinates ("flag
  for review" catch-alls) are not converted: Amana does not trust a header claim of
  cleanliness, and a catch-all would make every image of a CT model go through OCR.
  deid.dicom.xray.chest only selects chest X-rays for a data set: nothing to convert.
Conditions: the source reads left to right; each line is one clause (`+` = and, `||` =
or, no prefix = and), a line's own `||`/`+` group inside it. `a|b` alternatives become
lists; a `+` inside a value between words (DERIVED+SECONDARY) means all of them, at its
end (AS+) it is part of the name. Misspelt keywords (Manfacturer) are corrected.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

import yaml

from anonymizer.importers.region_rules import ATTRIBUTION, HEADER, convert_texts

# The file each kind of rule is written to (profiles/pixel/<name>.yaml).
FILE_NAMES = {
    "device-regions": "ctp-device-regions",
    "examine-signs": "ctp-examine-signs",
    "ultrasound-regions": "ultrasound-regions",
}


def convert(source_dir: Path) -> dict[str, list[dict[str, Any]]]:
    recipes = [
        (path.name, path.read_text(encoding="utf-8"))
        for path in sorted(source_dir.glob("deid.dicom*"))
    ]
    return {FILE_NAMES[kind]: rules for kind, rules in convert_texts(recipes).items()}


class _Dumper(yaml.SafeDumper):
    """Short lists of scalars (regions, alternatives) on one line, as stewards write them."""


def _represent_list(dumper: yaml.SafeDumper, data: list[Any]) -> yaml.Node:
    flow = all(isinstance(v, int | str) for v in data) and len(data) <= 6
    return dumper.represent_sequence("tag:yaml.org,2002:seq", data, flow_style=flow)


_Dumper.add_representer(list, _represent_list)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("source", type=Path, help="folder with deid.dicom* recipes")
    parser.add_argument("target", type=Path, help="profiles/pixel")
    args = parser.parse_args(argv)
    args.target.mkdir(parents=True, exist_ok=True)
    for name, rules in convert(args.source).items():
        document = {**ATTRIBUTION, "rules": rules}
        text = HEADER.format(source=args.source.name) + yaml.dump(
            document, Dumper=_Dumper, sort_keys=False, allow_unicode=True, width=100
        )
        (args.target / f"{name}.yaml").write_text(text, encoding="utf-8")
        print(f"{name}.yaml: {len(rules)} rules")
    return 0


if __name__ == "__main__":
    sys.exit(main())
