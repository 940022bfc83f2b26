"""Party-side toolkit: normalize identifiers, tokenize them with the group match key, seal.

Nothing in this package may import room-side code: it is what each company runs on
its own machine, with raw identifiers in hand.
"""
