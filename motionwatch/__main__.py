from motionwatch.cli import console

console()
