"""Example astrobench plugin: importing a module registers what it defines."""
