import json
import subprocess
import sys

import cknet
from cknet import CKNetConfig
from cknet.cli import main


def test_config_command_prints_the_preset(capsys):
    assert main(["config", "mimic_cxr"]) == 0
    assert CKNetConfig.from_dict(json.loads(capsys.readouterr().out)) == CKNetConfig.mimic_cxr()


def test_no_command_prints_help(capsys):
    assert main([]) == 2
    assert "usage: cknet" in capsys.readouterr().out


def test_import_is_light():
    code = "import sys, cknet; print('torch' in sys.modules, cknet.__version__)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.split() == ["False", cknet.__version__]
