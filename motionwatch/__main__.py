from motionwatch.cli import main

raise SystemExit(main())
