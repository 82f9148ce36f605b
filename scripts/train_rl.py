"""Train chapter 14's CartPole agents, PPO and DQN, on three seeds each, and save a checkpoint.

    python scripts/train_rl.py --out cartpole_agents.pt [--seeds 0 1 2] [--force]

For each seed it trains PPO (``dlbook.ppo.train_ppo``) and DQN (``dlbook.dqn.train_dqn``) with
their default configs (``--ppo_steps`` / ``--dqn_steps`` change the lengths), records the return
of every training episode (the learning curves), and evaluates each final greedy policy on 20
selection episodes (``SELECTION_SEEDS``) and on the chapter's 20 evaluation episodes
(``EVAL_SEEDS``). The agent of each kind with the best mean return on the *selection*
episodes is saved; the evaluation episodes play no part in the choice. ``--out`` is written
atomically with ``dlbook.ppo.save_cartpole_agents``; an existing file is refused unless
``--force``.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import time
from pathlib import Path

import torch

from dlbook.dqn import DQNConfig, train_dqn
from dlbook.ppo import EVAL_SEEDS, SELECTION_SEEDS, PPOConfig, save_cartpole_agents, train_ppo
from dlbook.rl import evaluate_policy


def parse(argv: list[str] | None) -> argparse.Namespace:
    """The command line: where to write, which seeds, how many environment steps."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, required=True,
                        help="checkpoint path; an existing file is refused unless --force")
    parser.add_argument("--force", action="store_true", help="replace an existing --out")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2], help="training seeds")
    parser.add_argument("--ppo_steps", type=int, default=PPOConfig().total_steps,
                        help="environment steps of each PPO run")
    parser.add_argument("--dqn_steps", type=int, default=DQNConfig().total_steps,
                        help="environment steps of each DQN run")
    parser.add_argument("--threads", type=int, default=1, help="torch CPU threads")
    return parser.parse_args(argv)


def run(name: str, config, train) -> dict:
    """Train one agent, evaluate it, and return the model and its record."""
    start = time.perf_counter()
    model, curve = train(config)
    seconds = time.perf_counter() - start
    record = {"seed": config.seed, "seconds": seconds,
              "curve_steps": [step for step, _ in curve],
              "curve_returns": [ret for _, ret in curve],
              "selection": evaluate_policy(model.act, SELECTION_SEEDS, config.env_id),
              "eval": evaluate_policy(model.act, EVAL_SEEDS, config.env_id)}
    print(f"{name} seed {config.seed}: {seconds:.0f} s, {len(curve)} episodes, selection mean "
          f"{sum(record['selection']) / 20:.1f}, evaluation mean {sum(record['eval']) / 20:.1f}",
          flush=True)
    return {"model": model, "record": record}


def main(argv: list[str] | None = None) -> None:
    """Train every seed of both agents, keep the best of each on the selection episodes."""
    args = parse(argv)
    if args.out.exists() and not args.force:  # fail before minutes of training, not after
        raise SystemExit(f"{args.out} exists; pass --force to replace it")
    torch.set_num_threads(args.threads)
    ppo_config = PPOConfig(total_steps=args.ppo_steps)
    dqn_config = DQNConfig(total_steps=args.dqn_steps)
    runs = {"ppo": [run("PPO", dataclasses.replace(ppo_config, seed=s), train_ppo)
                    for s in args.seeds],
            "dqn": [run("DQN", dataclasses.replace(dqn_config, seed=s), train_dqn)
                    for s in args.seeds]}
    best = {name: max(results, key=lambda r: sum(r["record"]["selection"]))
            for name, results in runs.items()}
    config = {"ppo": dataclasses.asdict(ppo_config), "dqn": dataclasses.asdict(dqn_config),
              "seeds": args.seeds, "eval_seeds": EVAL_SEEDS, "selection_seeds": SELECTION_SEEDS,
              "shipped_seed": {name: b["record"]["seed"] for name, b in best.items()}}
    extra = {"runs": {name: [r["record"] for r in results] for name, results in runs.items()},
             "threads": args.threads}
    save_cartpole_agents(args.out, ppo=best["ppo"]["model"], dqn=best["dqn"]["model"],
                         config=config, extra=extra, force=args.force)
    print(json.dumps(config["shipped_seed"]))


if __name__ == "__main__":
    main()
