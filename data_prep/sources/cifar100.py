"""CIFAR-100: fine labels (100 classes) by default, coarse (20) with --label-type coarse; train 50,000
and test 10,000 images of 32x32."""
NAME = "cifar100"
HELP = "CIFAR-100 from cifar-100-python.tar.gz or its extracted cifar-100-python/ folder"


def add_arguments(parser) -> None:
    parser.add_argument("--label-type", default="fine", choices=["fine", "coarse"],
                        help="fine (100 classes, default) or coarse (20 superclasses)")


def load(args, pool=None):
    from .cifar import load_cifar

    return load_cifar(args, NAME)
