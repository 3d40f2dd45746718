"""CIFAR-10: 10 classes, train 50,000 and test 10,000 images of 32x32, in the official label order."""
NAME = "cifar10"
HELP = "CIFAR-10 from cifar-10-python.tar.gz or its extracted cifar-10-batches-py/ folder"


def add_arguments(parser) -> None:
    pass


def load(args, pool=None):
    from .cifar import load_cifar

    return load_cifar(args, NAME)
