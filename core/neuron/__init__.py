"""AWS Neuron: what the Neuron tools (neuron-ls, neuron-monitor) say about the host's devices.

Nothing here imports a Neuron package: the tools are separate executables (aws-neuronx-tools),
read as text, so this code runs, and its tests pass, on hosts with no Neuron device at all.
"""
