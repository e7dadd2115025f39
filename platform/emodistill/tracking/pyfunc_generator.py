"""MLflow "models from code" definition of a generator: MLflow stores this file, never a pickle.

predict() takes rows (label, count) and optionally the columns seed and balanced (both read from the
first row). balanced=False draws sum(count) utterances at the real training class prior instead.
It returns the synthetic feature table as a DataFrame whose `features` cells are lists of frames.
"""

from __future__ import annotations

import mlflow
import pandas as pd

from emodistill.generator import load


class GeneratorModel(mlflow.pyfunc.PythonModel):
    """A trained generator served through mlflow.pyfunc."""

    def load_context(self, context):
        """Load the generator artifact that log_model copied beside this file."""
        self.generator = load(context.artifacts["generator"])

    def predict(self, context, model_input: pd.DataFrame, params=None) -> pd.DataFrame:
        """Sample the requested counts per label; one output row per synthetic utterance."""
        first = model_input.iloc[0] if len(model_input) else {}
        seed = int(first.get("seed", 0))
        counts = dict(zip(model_input["label"], model_input["count"].astype(int)))
        if bool(first.get("balanced", True)):
            table = self.generator.sample(counts, seed=seed)
        else:
            table = self.generator.sample(0, balanced=False, seed=seed, total=sum(counts.values()))
        return pd.DataFrame(table.to_pydict())


mlflow.models.set_model(GeneratorModel())
