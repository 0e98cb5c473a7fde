"""The students' datasets (SO/DO/baseline) and the supervision scenarios they are trained under."""
