from deepmle.cli import main

raise SystemExit(main())
