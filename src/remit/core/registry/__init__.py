"""The registry: owners, business functions, agents, tools, workflows and standing grants."""
