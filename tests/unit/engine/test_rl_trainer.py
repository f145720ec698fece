"""The TRL adapter (retu.engine.rl_trainer) where it can run without a trainer: the vLLM weight guard."""

from types import SimpleNamespace

from retu.engine.rl_trainer import RetuGRPOTrainer


def test_vllm_engine_gets_the_current_weights_once_per_step():
    syncs = []
    engine = SimpleNamespace(sync_weights=lambda: syncs.append(trainer.state.global_step))
    trainer = SimpleNamespace(vllm_generation=engine, state=SimpleNamespace(global_step=0), _last_loaded_step=-1)
    for step in (0, 0, 4, 4):
        trainer.state.global_step = step
        RetuGRPOTrainer.sync_vllm_weights(trainer)
    assert syncs == [0, 4] and trainer._last_loaded_step == 4
