"""Callbacks with Keras' hooks and names (docs/architecture.md, "Callbacks")."""
from .base import Callback, CallbackList, History
from .logging import CSVLogger, EpochTimer, LambdaCallback, TensorBoard
from .training import (BackupAndRestore, EarlyStopping, LearningRateScheduler, ModelCheckpoint, ReduceLROnPlateau,
                       TerminateOnNaN)

__all__ = ["Callback", "CallbackList", "History", "CSVLogger", "EpochTimer", "LambdaCallback", "TensorBoard",
           "BackupAndRestore", "EarlyStopping", "LearningRateScheduler", "ModelCheckpoint", "ReduceLROnPlateau",
           "TerminateOnNaN"]
