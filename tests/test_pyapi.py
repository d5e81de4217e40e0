"""The Python API (``latency_tui.benchmark``) and the inputs as users bring them: any model
object, any input object, functions of the batch size, datasets, and samples/s that is never
computed from a batch size the model did not receive."""

from __future__ import annotations

import json
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

torch = pytest.importorskip("torch")
from torch import nn  # noqa: E402

import latency_tui  # noqa: E402
from latency_tui.core.errors import UserError  # noqa: E402
from latency_tui.core.session import load_session  # noqa: E402

QUICK = {"samples": 40, "warmup_max": 0.5, "progress": False}


class Linear(nn.Module):
    def __init__(self):
        super().__init__()
        self.linear = nn.Linear(4, 2)

    def forward(self, x):
        return self.linear(x)


class Recording(nn.Module):
    """Remembers the leading dimension and the content of every input it was called with."""

    def __init__(self):
        super().__init__()
        self.rows, self.seen = [], set()

    def forward(self, x):
        self.rows.append(int(x.shape[0]))
        self.seen.add(round(float(x.sum()), 4))
        return x


@dataclass
class Rows:
    categorical: torch.Tensor
    numerical: torch.Tensor


class Tabular(nn.Module):
    """The blog's model: embeddings and numericals, its input a dataclass."""

    def __init__(self, depth=4):
        super().__init__()
        self.embed = nn.Embedding(50, 4)
        layers, width = [], 4 * 3 + 5
        for _ in range(depth):
            layers += [nn.Linear(width, 32), nn.ReLU()]
            width = 32
        self.mlp = nn.Sequential(*layers, nn.Linear(width, 1))
        self.rows = []

    def forward(self, rows: Rows):
        self.rows.append(int(rows.numerical.shape[0]))
        return self.mlp(torch.cat([self.embed(rows.categorical).flatten(1), rows.numerical], 1))


def generate_data(n_rows):
    generator = torch.Generator().manual_seed(0)
    return Rows(torch.randint(0, 50, (n_rows, 3), generator=generator),
                torch.randn(n_rows, 5, generator=generator))


def inferences_per_s(result):
    return result.samples / result.duration_s


# -- models as objects -------------------------------------------------------------------------


@pytest.mark.parametrize("model", [Linear, Linear(), lambda: Linear()],
                         ids=["class", "instance", "factory"])
def test_a_class_an_instance_or_a_factory_is_measured(model):
    # Defect: passing a class gave "type object 'Mlp' has no attribute 'rpartition'".
    session = latency_tui.benchmark(model, torch.zeros(1, 4), **QUICK)
    (result,) = session.results
    assert result.status == "finished", result.error
    assert session.model["parameters"] == 10
    assert json.loads(session.to_json())["results"][0]["status"] == "finished"
    (row,) = session.table()
    assert row["batch_size"] == 1 and row["p50_ms"] > 0 and row["samples_per_s"] > 0


def test_a_source_string_is_the_command_lines_own():
    session = latency_tui.benchmark("builtin:mlp", batch_sizes=(1, 4), **QUICK)
    assert [r.config.batch_size for r in session.results] == [1, 4]
    assert all(r.status == "finished" for r in session.results)


def test_a_dataclass_input_runs_at_its_own_batch_size():
    # Defect: (model, dataclass_instance) was refused; labelled batch 1 it read 8x too low.
    model = Tabular()
    session = latency_tui.benchmark(model, generate_data(8), **QUICK)
    (result,) = session.results
    assert result.config.batch_size == 8 and set(model.rows) == {8}
    assert result.throughput.samples_per_s == pytest.approx(8 * inferences_per_s(result), rel=1e-6)
    assert result.details["inputs"]["kind"] == "given"


def test_inputs_already_batched_refuse_a_sweep_they_cannot_honour():
    with pytest.raises(UserError, match=r"batch_sizes 64: the inputs are one batch of 8"):
        latency_tui.benchmark(Tabular(), generate_data(8), batch_sizes=64, **QUICK)


def test_a_model_that_ignores_its_inputs_is_batch_one_unless_told():
    # Defect: a zero-argument closure ran batch 1 whatever --batch-sizes 64 said, and reported
    # samples/s 64 times too high, with no warning.
    model = Tabular()
    batch = generate_data(64)

    def closure():
        return model(batch)

    with pytest.raises(UserError, match=r"takes no inputs.*64 times too high"):
        latency_tui.benchmark(closure, batch_sizes=64, **QUICK)
    (result,) = latency_tui.benchmark(closure, **QUICK).results
    assert result.config.batch_size == 1
    # Told that each call processes 64 rows, it says so.
    (told,) = latency_tui.benchmark(closure, inputs_batch_size=64, **QUICK).results
    assert told.config.batch_size == 64
    assert told.throughput.samples_per_s == pytest.approx(64 * inferences_per_s(told), rel=1e-6)


@pytest.mark.parametrize("depth", [4, 8])
def test_a_function_of_the_batch_size_builds_each_batch(depth):
    # The blog's generate_data(n_rows): samples/s is inferences/s x the rows really received.
    model = Tabular(depth)
    session = latency_tui.benchmark(model, generate_data, batch_sizes=(1, 64), **QUICK)
    assert set(model.rows) == {1, 64}
    for result in session.results:
        assert result.status == "finished", result.error
        assert result.details["inputs"] == {"kind": "built", "batch_size": result.config.batch_size,
                                            "distinct_batches": 1}
        assert result.throughput.samples_per_s == pytest.approx(
            result.config.batch_size * inferences_per_s(result), rel=1e-6)


def test_a_function_building_the_wrong_batch_is_refused():
    with pytest.raises(UserError, match=r"built a batch of 3 .*not 1"):
        latency_tui.benchmark(Tabular(), lambda n: generate_data(3), **QUICK)


def test_batch_one_tensors_are_repeated_to_the_batch_size():
    model = Recording()
    latency_tui.benchmark(model, torch.ones(1, 3), batch_sizes=(1, 5), **QUICK)
    assert set(model.rows) == {1, 5}


# -- datasets ----------------------------------------------------------------------------------


def test_a_dataset_is_cycled_per_inference_and_counted():
    # Defect: a recording model saw 2,044 calls and 1 distinct input.
    model = Recording()
    examples = [torch.full((3,), float(i)) for i in range(10)]
    session = latency_tui.benchmark(model, dataset=examples, batch_sizes=2, **QUICK)
    (result,) = session.results
    assert len(model.seen) == 5  # 10 examples make 5 distinct batches of 2
    assert result.details["inputs"]["distinct_batches"] == 5
    assert result.details["inputs"]["distinct_examples"] == 10


def test_a_sampled_dataset_is_seeded():
    def seen(seed):
        model = Recording()
        latency_tui.benchmark(model, dataset=[torch.full((2,), float(i)) for i in range(50)],
                              order="sample", seed=seed, batch_sizes=4, **QUICK)
        return model.seen

    assert seen(1) == seen(1) != seen(2)


def test_a_torch_dataset_of_tuples_becomes_positional_batches():
    class Pairs(torch.utils.data.Dataset):
        def __len__(self):
            return 6

        def __getitem__(self, i):
            return torch.full((2,), float(i)), torch.full((1,), 1.0)

    calls = []

    def model(x, y):
        calls.append((tuple(x.shape), tuple(y.shape)))
        return x * y

    session = latency_tui.benchmark(model, dataset=Pairs(), batch_sizes=3, **QUICK)
    assert session.results[0].status == "finished"
    assert set(calls) == {((3, 2), (3, 1))}


def test_an_empty_dataset_is_bad_input():
    with pytest.raises(UserError, match="the dataset is empty"):
        latency_tui.benchmark(Recording(), dataset=[], **QUICK)


# -- pre- and post-processing -------------------------------------------------------------------


def test_preprocess_takes_the_inputs_as_the_model_would_and_its_output_feeds_the_model():
    # NeuronPerf's convention: a tuple is spread, a dict (any mapping) is keywords.
    class Encoding(dict):
        pass

    def preprocess(ids, scale):
        return Encoding(x=ids * scale)

    outputs = []
    session = latency_tui.benchmark(lambda x: x + 1, (torch.ones(1, 2), 2.0),
                                    preprocess=preprocess, postprocess=outputs.append, **QUICK)
    assert session.results[0].status == "finished", session.results[0].error
    assert float(outputs[-1].sum()) == 6.0


def test_a_failing_step_is_named_with_its_function_and_message():
    # Defect: "failed: AttributeError", and errors that blamed the model for the preprocess.
    class Encoding:
        def __getattr__(self, name):
            raise AttributeError

    def tokenize(x):
        return Encoding()

    def embed(encoding):
        return encoding.input_ids

    with pytest.raises(UserError) as caught:
        latency_tui.benchmark(embed, torch.zeros(1, 4), preprocess=tokenize, **QUICK)
    message = str(caught.value)
    assert message.startswith("the model test_a_failing_step_is_named_with_its_function_and_"
                              "message.<locals>.embed, called with Encoding, failed:")
    assert "AttributeError with no message (raised in __getattr__" in message

    def bad_pre(x, y):
        return x

    with pytest.raises(UserError, match=r"^model.preprocess \(.*bad_pre\), called with 1 "
                                        r"positional argument \(Tensor\[1, 4\] float32\), "
                                        r"failed: TypeError"):
        latency_tui.benchmark(Linear(), torch.zeros(1, 4), preprocess=bad_pre, **QUICK)


def test_inputs_that_do_not_fit_the_model_are_refused_before_running(tmp_path):
    target = tmp_path / "s.json"
    with pytest.raises(UserError, match=r"the model Linear, .*Tensor\[1, 7\].*failed: RuntimeError"):
        latency_tui.benchmark(Linear, torch.zeros(1, 7), json=str(target), **QUICK)
    assert not target.exists()


# -- process copies ------------------------------------------------------------------------------


def test_process_copies_need_an_importable_model():
    with pytest.raises(UserError, match=r"copy_mode='process' .*cannot see a lambda"):
        latency_tui.benchmark(lambda x: x, torch.zeros(1, 2), copy_mode="process", **QUICK)


@pytest.mark.slow
def test_process_copies_import_a_model_defined_in_a_script(tmp_path):
    script = tmp_path / "script.py"
    script.write_text(
        "import torch\n"
        "from torch import nn\n"
        "class Double(nn.Module):\n"
        "    def forward(self, x):\n"
        "        return x * 2\n"
        "def rows(n):\n"
        "    return torch.ones(n, 3)\n"
        "if __name__ == '__main__':\n"
        "    import latency_tui\n"
        "    s = latency_tui.benchmark(Double, rows, copy_mode='process', copies=2,\n"
        "                              batch_sizes=(2,), samples=40, warmup_max=0.5,\n"
        "                              progress=False)\n"
        "    r = s.results[0]\n"
        "    print(r.status, r.config.copies, r.details['inputs']['batch_size'], r.error)\n",
        encoding="utf-8")
    done = subprocess.run([sys.executable, str(script)], capture_output=True, text=True,
                          timeout=300, cwd=tmp_path)
    assert done.stdout.split()[:3] == ["finished", "2", "2"], done.stdout + done.stderr


def test_the_session_written_is_the_session_returned(tmp_path):
    target = tmp_path / "s.json"
    session = latency_tui.benchmark(Linear(), torch.zeros(1, 4), json=str(target), **QUICK)
    loaded = load_session(target)
    assert [r.samples for r in loaded.results] == [r.samples for r in session.results]
    assert loaded.model["name"] == "Linear"


def test_an_unknown_keyword_names_itself():
    with pytest.raises(UserError, match=r"unknown keyword 'batch_size' \(known: .*batch_sizes"):
        latency_tui.benchmark(Linear(), torch.zeros(1, 4), batch_size=4)


def test_importing_the_package_imports_neither_torch_nor_textual():
    code = ("import sys, latency_tui; assert callable(latency_tui.benchmark); "
            "assert 'torch' not in sys.modules and 'textual' not in sys.modules")
    subprocess.run([sys.executable, "-c", code], check=True, timeout=60)


@pytest.mark.slow
def test_the_readmes_example_runs_as_it_is(tmp_path):
    readme = (Path(__file__).resolve().parent.parent / "README.md").read_text(encoding="utf-8")
    section = readme.split("## Python API", 1)[1]
    code = section.split("```python\n", 1)[1].split("```", 1)[0]
    (tmp_path / "bench.py").write_text(code.replace("duration=2", "duration=0.3"),
                                       encoding="utf-8")
    done = subprocess.run([sys.executable, "bench.py"], capture_output=True, text=True,
                          timeout=300, cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert [line.split()[0] for line in done.stdout.splitlines()] == ["1", "64"]
    assert load_session(tmp_path / "tabular.json").results[1].config.batch_size == 64


def test_a_dataclass_inside_the_arguments_tuple_still_says_its_batch_size():
    # Found through the pytest fixture: latency(model, rows) passes (rows,), one level deeper.
    model = Tabular()
    (result,) = latency_tui.benchmark(model, (generate_data(16),), **QUICK).results
    assert result.config.batch_size == 16 and set(model.rows) == {16}


def test_the_planners_trial_call_runs_off_the_main_thread():
    # torch work on the main thread made the engine's timing threads up to 6x slower (OpenMP
    # keeps a thread team per calling thread): 1.2 ms against 0.21 ms for a batch of 1024.
    import threading

    threads = []

    def model(x):
        threads.append(threading.current_thread())
        return x

    latency_tui.benchmark(model, torch.zeros(1, 2), **QUICK)
    assert threads and threading.main_thread() not in threads
