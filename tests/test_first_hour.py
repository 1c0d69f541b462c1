"""What a newcomer stumbled on in the first hour (each was a defect): saving to a missing folder
or under a Keras name, file permissions, predict's progress bar."""
import os

import numpy as np
import pytest

import portanet as pn
from portanet.errors import InvalidArgumentError


@pytest.fixture
def model():
    pn.set_seed(0)
    m = pn.Sequential([pn.Input((3,)), pn.layers.Dense(2, activation="softmax")])
    m.compile("adam", "sparse_categorical_crossentropy")
    return m


def test_saving_into_a_missing_folder_names_the_folder(model, tmp_path):
    path = tmp_path / "no" / "such" / "m.pnet"
    with pytest.raises(FileNotFoundError, match=r"Cannot write .*m\.pnet'?: its folder .*no/such'? does not exist"):
        model.save(path)
    assert not (tmp_path / "no").exists()


@pytest.mark.parametrize("name", ["my_cnn.keras", "weights.h5", "M.HDF5"])
def test_a_keras_file_name_is_refused(model, tmp_path, name):
    with pytest.raises(InvalidArgumentError, match="Keras cannot read"):
        model.save(tmp_path / name)
    assert os.listdir(tmp_path) == []


def test_saved_files_honour_the_umask(model, tmp_path):
    previous = os.umask(0o027)
    try:
        model.save(tmp_path / "m.pnet")
        model.save_weights(tmp_path / "w.pnet")
    finally:
        os.umask(previous)
    for name in ("m.pnet", "w.pnet"):
        assert (tmp_path / name).stat().st_mode & 0o777 == 0o640


def test_predict_shows_a_progress_bar_unless_silenced(model, capsys):
    x = np.zeros((100, 3), np.float32)
    model.predict(x, batch_size=10)            # verbose="auto", as Keras: a bar
    assert "10/10" in capsys.readouterr().out
    model.predict(x, batch_size=10, verbose=0)
    assert capsys.readouterr().out == ""
