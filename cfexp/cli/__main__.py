"""python -m cfexp.cli"""

from cfexp.cli.main import main

raise SystemExit(main())
