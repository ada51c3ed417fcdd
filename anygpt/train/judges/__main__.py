from anygpt.train.judges.build import main

raise SystemExit(main())
