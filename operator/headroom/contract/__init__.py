"""The contract between the operator and the agent runner (BRIEF section 3).

Both sides import this package: the runner to write the termination message, the operator
to read it. The JSON Schema file beside this module is the single definition of the format.
"""
