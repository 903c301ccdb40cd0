"""The resume checks of the training loop (utils/engine/training.py)."""
import pytest

from utils.engine.training import check_same_inputs
from utils.errors import UserError


def test_a_moved_vae_with_the_same_weights_resumes():
    check_same_inputs({"vae_path": "/old/place/vae/best.tar", "vae_id": "abc"},
                      {"vae_path": "/new/place/vae/best.tar", "vae_id": "abc"}, "ckpt")


def test_other_vae_weights_are_refused():
    with pytest.raises(UserError, match="another VAE.*--noreload"):
        check_same_inputs({"vae_id": "abc"}, {"vae_id": "def"}, "ckpt")


def test_checkpoints_older_than_a_setting_count_as_its_former_value():
    # transformers were trained with RMSprop before the optimizer was recorded; VAEs without flips
    with pytest.raises(UserError, match="optimizer_name = 'rmsprop'"):
        check_same_inputs({}, {"optimizer_name": "adam"}, "ckpt")
    check_same_inputs({}, {"optimizer_name": "rmsprop", "flip": False}, "ckpt")
    with pytest.raises(UserError, match="flip = False"):
        check_same_inputs({}, {"flip": True}, "ckpt")
