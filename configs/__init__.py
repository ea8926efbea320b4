"""Hydra configs, installed as `sgqn_robot.configs` so a wheel install finds them too."""
