"""Data the project ships (JSONL), with a fixed-seed organism/catch/eval split recorded per record."""

from inspect_misalign.data._files import data_path, read_jsonl
from inspect_misalign.data._split import SPLIT_SEED, assign_split

__all__ = ["SPLIT_SEED", "assign_split", "data_path", "read_jsonl"]
