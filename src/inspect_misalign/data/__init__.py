"""Data the project ships (JSONL), with a fixed-seed organism/catch/eval split recorded per record."""

from inspect_misalign.data._files import data_path, read_jsonl

__all__ = ["data_path", "read_jsonl"]
