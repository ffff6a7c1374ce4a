"""The loops and their guards: the training loop (`train`), the mining pass
(`mine`), checkpoints, run guards (locks, preemption, config changes), a
trained model back from a workdir (`restore`), weights into a fresh run
(`pretrained`) and the fakes of the tests (`testing`)."""
