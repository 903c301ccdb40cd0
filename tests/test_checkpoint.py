import os
import stat

import pytest
import torch

from utils.checkpoint import atomic_write, load_checkpoint, save_checkpoint
from utils.errors import UserError


def test_round_trip(tmp_path):
    model = torch.nn.Linear(3, 2)
    save_checkpoint(tmp_path / "c.tar", "vae", epoch=4, test_loss=1.5, model=model.state_dict())
    state = load_checkpoint(tmp_path / "c.tar", "vae")
    assert state["epoch"] == 4 and state["test_loss"] == 1.5
    torch.testing.assert_close(state["model"]["weight"], model.weight.detach())
    assert not [p for p in tmp_path.iterdir() if p.name != "c.tar"]  # no temporary file left


def test_wrong_kind_missing_and_corrupt(tmp_path):
    save_checkpoint(tmp_path / "c.tar", "mdrnn", model={})
    with pytest.raises(UserError, match="holds a 'mdrnn' checkpoint"):
        load_checkpoint(tmp_path / "c.tar", "vae")
    with pytest.raises(UserError, match="no vae checkpoint"):
        load_checkpoint(tmp_path / "none.tar", "vae")
    data = (tmp_path / "c.tar").read_bytes()
    (tmp_path / "bad.tar").write_bytes(data[: len(data) // 2])
    with pytest.raises(UserError, match="cannot be read"):
        load_checkpoint(tmp_path / "bad.tar", "mdrnn")


def test_other_latent_size_is_refused(tmp_path):
    torch.save({"kind": "vae", "sizes": {"lsize": 64}, "model": {}}, tmp_path / "c.tar")
    with pytest.raises(UserError, match="made with sizes"):
        load_checkpoint(tmp_path / "c.tar", "vae")


def test_pickled_code_is_refused(tmp_path):
    class Evil:
        def __reduce__(self):
            return (print, ("this should never run",))
    torch.save({"kind": "vae", "x": Evil()}, tmp_path / "evil.tar")
    with pytest.raises(UserError, match="cannot be read"):
        load_checkpoint(tmp_path / "evil.tar", "vae")


def test_failed_write_keeps_the_old_file(tmp_path):
    (tmp_path / "f").write_text("old")

    def write(tmp):
        open(tmp, "w").write("half")
        raise RuntimeError("killed")
    with pytest.raises(RuntimeError):
        atomic_write(tmp_path / "f", write)
    assert (tmp_path / "f").read_text() == "old"
    assert [p.name for p in tmp_path.iterdir()] == ["f"]


@pytest.mark.parametrize("umask,mode", [(0o022, 0o644), (0o027, 0o640)])
def test_written_files_get_the_mode_the_umask_gives(umask, mode, tmp_path):
    """Rollouts (through the real command line) and checkpoints are not left 0600."""
    from tests.conftest import run_script

    old = os.umask(umask)
    try:
        run_script("data/generation_script.py", "--rollouts", 1, "--rootdir", tmp_path / "ds", "--threads", 1,
                   "--max-steps", 5)
        save_checkpoint(tmp_path / "c.tar", "vae", x=1)
    finally:
        os.umask(old)
    written = list((tmp_path / "ds").rglob("rollout_*.npz")) + [tmp_path / "c.tar"]
    assert len(written) == 2
    assert [stat.S_IMODE(p.stat().st_mode) for p in written] == [mode, mode]


def test_same_state_same_bytes_wherever_saved(tmp_path):
    """Shipped agents sharing a VAE then share one git object (pretrained/)."""
    state = {"model": {"w": torch.arange(6.0).view(2, 3)}, "epoch": 3}
    save_checkpoint(tmp_path / "a" / "best.tar", "vae", **state)
    save_checkpoint(tmp_path / "b" / "other.tar", "vae", **state)
    assert (tmp_path / "a" / "best.tar").read_bytes() == (tmp_path / "b" / "other.tar").read_bytes()
