"""A small ratings file with timestamps, whose splits and filters the data tests write out by hand.

Row: user, movie, rating, timestamp. Rows 3 and 4 share a second, as do rows 7 and 10 (both user 2's). Users 1, 2
and 3 have 5, 4 and 2 ratings; movies 10, 11, 12, 13 and 14 have 3, 3, 2, 2 and 1.
"""

RATINGS = """userId,movieId,rating,timestamp
1,10,4.0,100
1,11,3.0,200
2,10,5.0,150
1,12,2.0,300
2,11,4.0,300
3,10,1.0,400
1,13,5.0,500
2,12,3.0,600
3,11,2.0,700
1,14,4.0,800
2,13,3.0,600
"""
