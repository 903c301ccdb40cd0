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
