"""The kerasapps command line: the group and most commands (:mod:`.main`), ``diagnose`` (:mod:`.diagnose`),
``tune`` (:mod:`.tune`), and what they share (:mod:`.options`)."""
