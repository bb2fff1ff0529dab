from deepmle.cli import console

console()
