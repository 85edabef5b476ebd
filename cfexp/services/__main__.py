"""python -m cfexp.services"""

from cfexp.services.command import main

raise SystemExit(main())
