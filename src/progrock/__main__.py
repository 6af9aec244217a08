from progrock.cli import main

raise SystemExit(main())
