"""Train a dynamics model on VAE latents: `trainmdrnn.py` / `traintransformersde.py`.

    python world-models/trainmdrnn.py --logdir exp_dir
    python trade/traintransformersde.py --logdir exp_dir

The frames are encoded once per run with the trained VAE (<logdir>/vae/best.tar,
or any VAE given by --vae, e.g. one trained in another experiment). Each
training sequence draws its latents from the VAE's posterior N(mu, sigma).
Writes <logdir>/mdrnn/ or <logdir>/transformers_de/: checkpoint.tar, best.tar and tb/.
"""
from pathlib import Path

import torch
from tqdm import tqdm

from models.dynamics import TITLES
from utils.checkpoint import load_checkpoint, weights_id
from utils.constants import DYNAMICS_DIRS, LSIZE, SEQ_LEN
from utils.errors import Parser, UserError
from utils.engine.models_io import data_sources, load_vae, recorded_vae, vae_path
from utils.engine.training import (RECIPES, RECORDED_SINCE, add_common_flags, check_common_flags, check_logdir,
                                   finished, fit, make_optimizer, seed_everything)


def parse_args(dynamics, argv=None):
    parser = Parser(description=f"Train {TITLES[dynamics]} of World Models on VAE latents.")
    recipe = RECIPES[dynamics]
    add_common_flags(parser, epochs=recipe["epochs"], batch_size=16, lr=recipe["lr"], test_fraction=None,
                     test_fraction_help="share of rollout files held out for testing (default: the VAE's, "
                                        "which this stage must keep: it holds out the VAE's test rollouts too)")
    parser.add_argument("--optimizer", choices=["rmsprop", "adam"], default=recipe["optimizer"],
                        help="rmsprop: alpha 0.9 (ctallec's MDN-RNN); adam: betas (0.9, 0.98), eps 1e-9 "
                             "(the seed's transformers)")
    parser.add_argument("--seq-len", type=int, default=SEQ_LEN, help="training sequence length")
    parser.add_argument("--include-reward", "--include_reward", action="store_true",
                        help="add the reward prediction (MSE) to the loss (needed to train in the dream)")
    parser.add_argument("--done-weight", type=float, default=1.0,
                        help="weight of the terminal steps in the done head's BCE (rare: lap complete or off "
                             "the playfield; the time limit is not a termination)")
    parser.add_argument("--vae", type=Path, default=None,
                        help="VAE checkpoint to encode frames with (default: <logdir>/vae/best.tar)")
    parser.add_argument("--dropout", type=float, default=0.0,
                        help="MDN-RNN only: variational dropout on its latent input and its recurrent state, one "
                             "mask per sequence; a dream of the model then draws one mask per episode (Dropout's "
                             "Dream Land: a different model each episode, harder to exploit). 0: the paper's model")
    parser.add_argument("--init", type=Path, default=None,
                        help="start a new training from this dynamics checkpoint's weights (e.g. the previous "
                             "round's model, when the dataset has grown); a resume continues from its checkpoint "
                             "and refuses an --init other than the one it started from")
    args = parser.parse_args(argv)
    check_common_flags(parser, args)
    if args.seq_len <= 0:
        parser.error(f"--seq-len must be > 0, got {args.seq_len}")
    if not args.done_weight > 0:
        parser.error(f"--done-weight must be > 0, got {args.done_weight}")
    if not 0 <= args.dropout < 1:
        parser.error(f"--dropout must be in [0, 1), got {args.dropout}")
    if args.dropout and dynamics != "mdrnn":
        parser.error("--dropout is the MDN-RNN's (python world-models/trainmdrnn.py); the transformers have none here")
    return args


def check_resumed_init(last, dynamics, args, init_id):
    """A training resumed with --init must name the weights it started from (recorded as init_id since
    configurations were recorded; an older checkpoint is taken as given, and told so). Returns the init_id
    to record: a resume without --init keeps its checkpoint's."""
    if args.noreload or not last.exists():
        return init_id
    state = load_checkpoint(last, dynamics, hint="rerun with --noreload to start afresh")
    if args.init is None:  # a resume without --init keeps the record of the weights it started from
        return state.get("init_id")
    if "init_id" not in state:
        print(f"{last}: made before a training recorded its --init; resuming it from its checkpoint")
    elif state["init_id"] != init_id:
        started = "without --init" if state["init_id"] is None else "from other weights"
        raise UserError(f"--init {args.init}: {last} started {started}; drop --init to continue it, or add "
                        "--noreload to start afresh from these weights")
    return init_id


def main(dynamics, argv=None):
    from data.loaders import RolloutSequenceDataset, held_out_like, prefetch, rollout_files, split_files, split_record
    from models.dynamics import build_dynamics
    from models.mdrnn import dynamics_loss

    args = parse_args(dynamics, argv)
    files = rollout_files(args.datadir)
    vae_file = (args.vae or vae_path(args.logdir)).resolve()
    device = args.device  # checked and resolved by check_common_flags
    vae, vae_state = load_vae(vae_file, device)
    # One split for both models: the VAE's fraction and rule, and the VAE's test rollouts held out here too,
    # so that neither model is tested on rollouts the other trained on.
    vae_fraction = vae_state.get("test_fraction", RECORDED_SINCE["test_fraction"])
    if args.test_fraction is None:
        args.test_fraction = vae_fraction
    elif args.test_fraction != vae_fraction:
        raise UserError(f"--test-fraction {args.test_fraction}: the VAE {vae_file} held out {vae_fraction} of its "
                        "rollouts and the dynamics model must hold out the same ones; drop the flag, or retrain "
                        f"the VAE with --test-fraction {args.test_fraction}")
    train_files, test_files = held_out_like(*split_files(files, args.test_fraction), vae_state)
    extra = {"vae_path": recorded_vae(vae_file, args.logdir), "vae_id": weights_id(vae_state["model"]),
             "seq_len": args.seq_len, "include_reward": args.include_reward, "optimizer_name": args.optimizer,
             "done_weight": args.done_weight, "dropout": args.dropout,
             "open_loop": 0,  # trainmdrnn.py --open-loop N of commit c1d8836: a model trained so is not continued
             **split_record(args.test_fraction, test_files)}
    init = None
    if args.init is not None:
        from utils.engine.models_io import load_dynamics

        init, init_state = load_dynamics(args.init, dynamics)
        if init_state.get("vae_id") != extra["vae_id"]:
            raise UserError(f"--init {args.init}: was trained on the latents of another VAE than {vae_file}")
    # The weights a training started from (--init), recorded; checked apart from the other inputs, as a resume
    # may leave --init out (it continues from its checkpoint), but not name other weights.
    init_id = weights_id(init_state["model"]) if init is not None else None
    extra["init_id"] = check_resumed_init(Path(args.logdir) / DYNAMICS_DIRS[dynamics] / "checkpoint.tar", dynamics,
                                          args, init_id)
    if finished(Path(args.logdir) / DYNAMICS_DIRS[dynamics], dynamics, args, extra):
        return
    seed_everything(args.seed)
    datasets = {}
    for name, fs in (("train", train_files), ("test", test_files)):
        datasets[name] = RolloutSequenceDataset(fs, args.seq_len)
        datasets[name].encode(vae.encoder, device)  # once per run, not every epoch
    # The real env steps behind this model (every step of its rollouts, training and test),
    # counted by every controller trained on it.
    # A model started from another (--init) also rests on that one's data: data_sources holds the steps of
    # every folder behind it, each counted once (the larger, newer count where --init grew the same folder;
    # an upper bound where two folders share rollouts).
    datadir = str(Path(args.datadir).resolve())
    sources = dict(data_sources(init_state)) if init is not None else {}
    if None in sources.values():  # an --init model trained before its data was recorded: ours only, said so
        print(f"--init {args.init}: the real env steps of its data are not recorded; counting this dataset's only")
        sources = {k: v for k, v in sources.items() if v is not None}
    sources[datadir] = sum(len(d.actions) for d in datasets.values())
    extra.update(datadir=datadir, data_sources=sources, data_steps=sum(sources.values()))
    print(f"{len(datasets['train'])} training and {len(datasets['test'])} test sequences "
          f"of {args.seq_len} steps, device {device}")
    del vae
    # only now, with every input checked, is anything written
    stage_dir = check_logdir(args.logdir) / DYNAMICS_DIRS[dynamics]
    stage_dir.mkdir(parents=True, exist_ok=True)

    model = build_dynamics(dynamics).to(device)
    if init is not None:
        model.load_state_dict(init.state_dict())  # a resumed run loads its own checkpoint over it in fit()
    if args.dropout:
        model.variational_dropout = args.dropout
    optimizer = make_optimizer(args.optimizer, model.parameters(), args.lr)

    def run_epoch(name, train, epoch):
        dataset = datasets[name]
        model.train(train)
        totals, count = {}, 0
        n_batches = -(-len(dataset) // args.batch_size)
        with torch.set_grad_enabled(train):
            batches = prefetch(dataset.batches(args.batch_size, shuffle=train), pin=device.type == "cuda")
            for batch in tqdm(batches, total=n_batches, desc=f"epoch {epoch} {name}", leave=False):
                # (BSIZE, SEQ_LEN, ...) -> (SEQ_LEN, BSIZE, ...)
                obs, action, reward, terminal, next_obs = (x.to(device, non_blocking=True).transpose(0, 1)
                                                           for x in batch)
                latent, next_latent = (o[..., :LSIZE] + o[..., LSIZE:].exp() * torch.randn_like(o[..., :LSIZE])
                                       for o in (obs, next_obs))
                losses = dynamics_loss(model(action, latent), next_latent, reward, terminal, args.include_reward,
                                       args.done_weight)
                if train:
                    optimizer.zero_grad(set_to_none=True)
                    losses["loss"].backward()
                    optimizer.step()
                n = obs.shape[1]
                for key, value in losses.items():
                    totals[key] = totals.get(key, 0.0) + value.detach() * n
                count += n
        return {key: (total / count).item() for key, total in totals.items()}

    best = fit(stage_dir, dynamics, model, optimizer, args,
               train_epoch=lambda e: run_epoch("train", True, e),
               test_epoch=lambda e: run_epoch("test", False, e),
               extra=extra)
    print(f"{dynamics}: best test loss {best:.4f}; checkpoints in {stage_dir}")
