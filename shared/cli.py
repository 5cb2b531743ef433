"""The `candlecast` command: one entry point for the services, the infrastructure and the tools.

Each subcommand lives in its own module exposing `configure(parser)` and `run(args) -> int`;
modules are imported only when their command runs, so `candlecast infra status` does not pay
for importing TensorFlow.
"""

from __future__ import annotations

import argparse
import importlib
import logging
import sys
from collections.abc import Sequence

from pydantic import ValidationError

from shared.config import get_settings

# name -> (module, one-line help)
COMMANDS: dict[str, tuple[str, str]] = {
    "infra": ("shared.infra.cli", "local Kafka and Postgres: up, down, status"),
    "up": ("shared.infra.stack", "start Kafka, Postgres and the four services"),
    "down": ("shared.infra.stack", "stop the services, Kafka and Postgres"),
    "status": ("shared.infra.stack", "what runs where"),
    "migrate": ("shared.storage.prepare", "apply database migrations and create topics"),
    "ingestor": ("services.ingestor.main", "Binance klines -> Kafka -> Postgres"),
    "predictor": ("services.predictor.main", "candles -> next-candle predictions"),
    "trainer": ("services.trainer.main", "retrains and promotes models"),
    "gateway": ("services.gateway.main", "REST API, dashboard, live stream"),
    "sim": ("services.sim.main", "a local stand-in for Binance's REST and websocket API"),
    "import": ("services.ingestor.importer", "load Binance archive CSV files into the pipeline"),
    "train": ("shared.model.cli", "train a model from CSV files or the database"),
    "evaluate": ("shared.model.cli", "evaluate a saved model against the baselines"),
    "backtest": ("shared.model.cli", "walk-forward backtest"),
}


def build_parser(argv: Sequence[str]) -> argparse.ArgumentParser:
    chosen = next((a for a in argv if not a.startswith("-")), None)
    parser = argparse.ArgumentParser(prog="candlecast", description=__doc__.splitlines()[0])
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for name, (module_name, help_text) in COMMANDS.items():
        cmd = sub.add_parser(name, help=help_text, description=help_text)
        cmd.set_defaults(_module=module_name)
        if name == chosen:
            # Only the chosen command's module is imported to add its options.
            module = importlib.import_module(module_name)
            configure = getattr(module, "configure", None)
            if configure is not None:
                configure(cmd, name)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    parser = build_parser(argv)
    args = parser.parse_args(argv)
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    try:
        get_settings()  # every command reads them: refuse bad or missing settings in one line
    except ValidationError as exc:
        from shared.messaging.runtime import validation_reason

        log = logging.getLogger("candlecast")
        log.error("candlecast %s refuses to start: %s", args.command, validation_reason(exc))
        return 2
    try:
        module = importlib.import_module(args._module)
    except ModuleNotFoundError as exc:
        if args._module.startswith("shared.infra."):  # the local launcher's dependencies are an extra
            logging.getLogger("candlecast").error(
                "candlecast %s needs the local launcher: pip install 'candlecast[local]' (%s)", args.command, exc)
            return 2
        raise
    result: int = module.run(args)
    return result


if __name__ == "__main__":
    raise SystemExit(main())
