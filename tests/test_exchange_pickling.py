"""``exchange.pickling``: notebook code keeps its file name and source lines in a worker, so
its tracebacks (which ``dspy.ReAct`` puts into prompts) read as in the kernel."""

import linecache
import subprocess
import sys
import textwrap

from dspex_lab.exchange import pickling

CELL = "/tmp/ipykernel_0000/cell_4242.py"  # a notebook cell: only in linecache, not on disk
SOURCE = 'def tool(x):\n    """A notebook tool."""\n    raise ValueError(f"bad {x}")\n'


def cell_function():
    linecache.cache[CELL] = (len(SOURCE), None, SOURCE.splitlines(True), CELL)
    namespace = {"__name__": "__main__"}
    exec(compile(SOURCE, CELL, "exec"), namespace)
    return namespace["tool"]


def test_a_cell_function_raises_in_another_process_with_the_kernels_traceback(tmp_path):
    blob = tmp_path / "fn.pickle"
    blob.write_bytes(pickling.dumps(cell_function()))
    script = textwrap.dedent(f"""
        import pickle, traceback
        fn = pickle.loads(open({str(blob)!r}, "rb").read())
        try:
            fn(3)
        except ValueError:
            print(traceback.format_exc())
    """)
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                         check=True).stdout
    assert f'File "{CELL}", line 3, in tool' in out
    assert 'raise ValueError(f"bad {x}")' in out  # the source line, from the shipped cell
    assert "<dynamic-code>" not in out


def test_code_from_a_real_file_keeps_its_name_and_ships_no_lines():
    import cloudpickle

    fn = cell_function()
    assert cloudpickle.loads(pickling.dumps(fn)).__code__.co_filename == CELL
    real = pickling._reduce_code(test_code_from_a_real_file_keeps_its_name_and_ships_no_lines
                                 .__code__)
    assert real[1][2] == __file__ and real[1][3] is None
