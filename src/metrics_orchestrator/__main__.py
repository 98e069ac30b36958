from metrics_orchestrator.interfaces.cli import main

main()
