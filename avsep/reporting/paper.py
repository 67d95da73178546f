"""The numbers HFRA reports (Tables 1-6, A1), keyed by the registry names of the rows we reproduce.

Used only to write the ``*_vs_paper.csv`` files beside our tables; nothing is computed from them.
Rows of the paper that we do not reproduce (methods quoted from other papers, e.g. Wave-U-Net, SGN) are
left out. Dataset names are the paper's; our default tables are made on synthetic stand-ins.
"""

from __future__ import annotations

# (SDR, SIR, SAR) per method.
SEPARATION: dict[str, dict[str, tuple[float, float, float]]] = {
    "table1": {  # MUSIC
        "rpca": (-0.62, 2.32, 2.41),
        "nmf_mfcc": (0.92, 5.68, 6.84),
        "sop": (3.84, 9.66, 9.32),
        "clipsep_middle": (5.57, 12.99, 8.60),
        "clipsep_late": (5.86, 11.65, 9.72),
        "hfra_align": (6.72, 12.60, 10.21),
    },
    "table2": {  # MUSIC-21
        "nmf_mfcc": (2.78, 6.70, 9.21),
        "sop": (6.51, 12.84, 10.58),
        "clipsep_middle": (7.36, 14.28, 10.22),
        "clipsep_late": (7.27, 13.10, 11.14),
        "hfra": (7.72, 13.63, 10.94),
        "hfra_align": (8.03, 13.92, 11.36),
    },
    "table3": {  # VGGSound
        "clipsep_late": (0.90, 7.47, 8.26),
        "clipsep_middle": (1.16, 9.41, 6.95),
        "hfra_align": (1.97, 8.96, 9.62),
    },
    "table6": {  # ablation on MUSIC
        "sop": (3.84, 9.66, 9.32),
        "clipsep_middle": (5.57, 12.99, 8.60),
        "clipsep_late": (5.86, 11.64, 9.72),
        "late_align": (6.07, 12.10, 9.73),
        "hfra": (6.65, 12.39, 10.11),
        "hfra_align": (6.72, 12.60, 10.21),
    },
}

PAPER_DATASET = {"table1": "MUSIC", "table2": "MUSIC-21", "table3": "VGGSound", "table4": "MUSIC",
                 "table5": "MUSIC", "table6": "MUSIC", "tableA1": "MUSIC"}

# Table 4: linear-probing accuracy (%) by representation; Table 5: modality gap.
PROBE = {"hfra": 49.58, "hfra_align": 58.82, "clap": 59.66}
GAP = {"hfra": 1.171, "hfra_align": 0.976}

# Table A1: SDR per instrument for middle / late / hierarchical fusion (no alignment).
PER_INSTRUMENT: dict[str, dict[str, float]] = {
    "clipsep_middle": {"violin": 6.49, "clarinet": 3.93, "saxophone": 4.11, "acoustic_guitar": 6.38, "xylophone": 8.14,
                       "flute": 2.01, "accordion": 4.51, "cello": 4.21, "erhu": -0.07, "tuba": 6.25, "trumpet": 13.87},
    "clipsep_late": {"violin": 6.16, "clarinet": 4.13, "saxophone": 5.79, "acoustic_guitar": 8.26, "xylophone": 13.49,
                     "flute": 1.57, "accordion": 5.65, "cello": 4.85, "erhu": 1.95, "tuba": 3.49, "trumpet": 12.54},
    "hfra": {"violin": 4.58, "clarinet": 7.56, "saxophone": 8.94, "acoustic_guitar": 7.57, "xylophone": 11.43,
             "flute": 4.96, "accordion": 5.84, "cello": 5.19, "erhu": 0.61, "tuba": 7.73, "trumpet": 13.62},
}
