"""CIFAR-10 (see `cifar.py`)."""
NAME = "cifar10"
HELP = "CIFAR-10 from cifar-10-python.tar.gz or its extracted cifar-10-batches-py/ folder"


def add_arguments(parser) -> None:
    pass


def load(args, pool=None):
    from .cifar import load_cifar

    return load_cifar(args, NAME)
