"""``python -m vvc_batch``: play one episode with a seeded random policy and report it.

    python -m vvc_batch [--env 13Bus] [--seed 0] [--profile K] [--dss-mode] [--data-dir DIR]
"""

from __future__ import annotations

import argparse
import sys
import time

import vvc_batch
from vvc_batch.commands import command


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m vvc_batch", description=__doc__.splitlines()[0])
    p.add_argument("--env", default="13Bus", help="environment name, e.g. 123Bus_soc_s1.5 (default 13Bus)")
    p.add_argument("--seed", type=int, default=0, help="seed of the profile draw and the random policy")
    p.add_argument("--profile", type=int, default=None, help="episode (load profile) index; default: drawn")
    p.add_argument("--dss-mode", action="store_true", help="let OpenDSS's own controllers act")
    p.add_argument("--data-dir", default=None, help="folder with the system folders (default $VVC_BATCH_DATA)")
    return p


@command
def main(argv: list[str] | None = None) -> int:
    """Play the episode and print it; the exit status (2 and one line on stderr on a user's
    mistake, such as an unknown environment or a missing data directory)."""
    args = _parser().parse_args(argv)
    env = vvc_batch.make(args.env, data_dir=args.data_dir, dss_mode=args.dss_mode)
    u = env.unwrapped
    options = {"profile": args.profile} if args.profile is not None else None
    obs, info = env.reset(seed=args.seed, options=options)
    env.action_space.seed(args.seed)
    source = "vvc_batch's embedded model" if u.core.source.kind == "embedded" else str(u.core.source.folder)
    print(f"{u.env_name}: the feeder from {source}, {len(u.node_names)} nodes, "
          f"{len(u.cap_names)} capacitor(s), {len(u.reg_names)} regulator(s), {len(u.bat_names)} battery(ies)")
    print(f"one day (24 hourly steps) of load profile {info['profile']} ({u.profile_source}, "
          f"{u.num_profiles} available), "
          f"{'OpenDSS controllers acting' if args.dss_mode else 'an agent taking random actions'}")
    print("columns: reward of the hour, network losses in % of the power delivered, lowest and "
          "highest node voltage (pu; 0.95..1.05 is the allowed band), voltage penalty, battery "
          "state of charge")
    print(f"{'hour':>4} {'reward':>9} {'loss %':>7} {'min V':>6} {'max V':>6} {'violation':>9} {'soc':>5}")
    N = len(u.node_names)
    total, t0, steps = 0.0, time.perf_counter(), 0
    while True:
        action = None if args.dss_mode else env.action_space.sample()
        obs, reward, terminated, truncated, info = env.step(action)
        steps += 1
        total += reward
        v = obs[:N]
        print(f"{info['hour']:>4} {reward:>9.4f} {100 * info['power_loss_ratio']:>7.3f} {v.min():>6.3f} "
              f"{v.max():>6.3f} {info['vol_reward']:>9.4f} {info['av_soc']:>5.2f}")
        if terminated or truncated:
            break
    dt = time.perf_counter() - t0
    print(f"episode return {total:.4f} over {steps} hours ({steps / dt:,.0f} steps/s); "
          f"a better controller keeps voltages in the band with few switchings and low losses")
    env.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
