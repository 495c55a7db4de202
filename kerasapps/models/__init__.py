"""Models: the canon's own layers (:mod:`.layers`, :mod:`.recompute`), building blocks and argument
checks for the factories in ``recipes/`` (:mod:`.blocks`, :mod:`.arguments`), ResNet's blocks and
builders (:mod:`.resnet`), one walk over nested layers (:mod:`.walk`) and weight loading (:mod:`.weights`)."""
