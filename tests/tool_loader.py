"""Import a script of tools/ (not a package) as a module, for the tests of that script."""
import importlib.util
import os

TOOLS = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tools")


def load_tool(name: str):
    """tools/<name>.py as a fresh module named ``fxlic_tools_<name>``."""
    spec = importlib.util.spec_from_file_location(f"fxlic_tools_{name}", os.path.join(TOOLS, name + ".py"))
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod
