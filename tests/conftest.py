"""Shared test settings: offline hub, no telemetry, GPU tests skipped without CUDA."""

import os

import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
os.environ.setdefault("PLANNER_CACHE_DIR", "off")  # tests never write to the user's cache folder


def pytest_configure(config):
    # `make test` (and CI) sets LALM_SLU_REQUIRE_TOOLS: a missing speech engine then stops the run with a clear
    # message instead of silently skipping every end-to-end training test.
    if os.environ.get("LALM_SLU_REQUIRE_TOOLS"):
        import shutil

        missing = [t for t in ("espeak-ng", "flite", "chromium") if shutil.which(t) is None]
        if missing:
            pytest.exit(
                f"missing system tools: {', '.join(missing)}; install them (sudo apt-get install "
                f"{' '.join(missing)}) or unset LALM_SLU_REQUIRE_TOOLS to skip the tests that need them",
                returncode=3,
            )
    # Tiny models run several times faster with one intra-op thread on a shared 2-core machine.
    try:
        import torch

        torch.set_num_threads(1)
    except ImportError:
        pass


def pytest_collection_modifyitems(config, items):
    try:
        import torch

        has_cuda = torch.cuda.is_available()
    except ImportError:
        has_cuda = False
    if has_cuda:
        return
    skip = pytest.mark.skip(reason="needs a CUDA GPU")
    for item in items:
        if "gpu" in item.keywords:
            item.add_marker(skip)


pytest_plugins = ["tests.fixtures_data", "tests.fixtures_models"]
